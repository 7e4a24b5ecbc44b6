"""Safe XML parsing (defusedxml: no external entities, no entity expansion bombs)."""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DET
from defusedxml.common import DefusedXmlException

from gpumaja.errors import CorruptFileError, MissingFileError


def parse_xml(source: str | Path | bytes, name: str | Path | None = None) -> Element:
    """Root element of an XML file (a path) or document (bytes). `name` labels errors for bytes."""
    label = name if name is not None else (source if not isinstance(source, bytes) else "<xml>")
    try:
        if isinstance(source, bytes):
            return DET.fromstring(source)
        path = Path(source)
        if not path.is_file():
            raise MissingFileError("file not found", label)
        return DET.parse(str(path)).getroot()
    except MissingFileError:
        raise
    except DefusedXmlException as exc:
        raise CorruptFileError(f"refused unsafe XML ({type(exc).__name__})", label) from exc
    except Exception as exc:  # ParseError, UnicodeDecodeError, ...
        raise CorruptFileError(f"not well-formed XML: {exc}", label) from exc


def local(tag: str) -> str:
    """Tag without its {namespace}."""
    return tag.rsplit("}", 1)[-1]


def find_local(root: Element, name: str) -> Element | None:
    """First descendant whose tag (namespace ignored) is `name`."""
    for el in root.iter():
        if local(el.tag) == name:
            return el
    return None


def findall_local(root: Element, name: str) -> list[Element]:
    return [el for el in root.iter() if local(el.tag) == name]


def require_text(root: Element, name: str, label: str | Path) -> str:
    """Text of the first descendant `name`; CorruptFileError naming the file when it is missing."""
    el = find_local(root, name)
    if el is None or el.text is None or not el.text.strip():
        raise CorruptFileError(f"missing element <{name}>", label)
    return el.text.strip()
