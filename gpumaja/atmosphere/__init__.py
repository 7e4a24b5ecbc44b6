"""Atmospheric correction: LUTs, gas, water vapour, AOT, surface reflectance (SRE), slope (FRE)."""
