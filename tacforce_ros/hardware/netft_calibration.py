"""Net F/T calibration: counts per force/torque unit, read from the box's netftapi2.xml page.

``http://<box>/netftapi2.xml`` holds ``cfgcpf``/``cfgcpt`` (counts per force / torque unit)
and the units, as codes ``cfgfu``/``cfgtu`` and as text ``scfgfu``/``scfgtu``. Force codes
1..6 = lbf, N, klbf, kN, kgf, gf; torque codes 1..6 = lbf-in, lbf-ft, N-m, N-mm, kgf-cm, kN-m.
The text is preferred when present; when both are present they must agree. The page is parsed
as data (defusedxml, no DTD), read with a bounded size and time, and its counts per unit must be
plausible, so a hostile or broken page cannot make every wrench inf or zero.
"""

from __future__ import annotations

import http.client
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Sequence

import defusedxml.ElementTree as SafeET
import numpy as np
from defusedxml import DefusedXmlException

from .rdt import NetFTError

CALIBRATION_PATH = "/netftapi2.xml"

LBF_N = 4.4482216152605  # exact: 0.45359237 kg * 9.80665 m/s^2
KGF_N = 9.80665
INCH_M = 0.0254
FOOT_M = 0.3048

# Keys are unit_key(name).
FORCE_UNITS_N = {
    "n": 1.0, "mn": 1e-3, "kn": 1e3,
    "lbf": LBF_N, "lb": LBF_N, "klbf": 1e3 * LBF_N,
    "kgf": KGF_N, "gf": 1e-3 * KGF_N,
}
TORQUE_UNITS_NM = {
    "nm": 1.0, "nmm": 1e-3, "mnm": 1e-3, "ncm": 1e-2, "knm": 1e3,
    **dict.fromkeys(("lbfin", "inlbf", "lbin", "inlb"), LBF_N * INCH_M),
    **dict.fromkeys(("lbfft", "ftlbf", "lbft", "ftlb"), LBF_N * FOOT_M),
    "kgfcm": KGF_N * 1e-2, "kgfm": KGF_N,
}
FORCE_UNIT_CODES = {1: "lbf", 2: "N", 3: "klbf", 4: "kN", 5: "kgf", 6: "gf"}
TORQUE_UNIT_CODES = {1: "lbf-in", 2: "lbf-ft", 3: "Nm", 4: "Nmm", 5: "kgf-cm", 6: "kNm"}

CALIBRATION_HINT = (
    "set the counts_per_force and counts_per_torque parameters (and force_unit/torque_unit "
    "if the box is not configured in N and Nm) from the sensor's calibration instead"
)
MAX_XML_BYTES = 1 << 20
# Plausible counts per force/torque unit. ATI boxes report ~1e3..1e7; 1..1e9 leaves room for any
# unit choice (e.g. counts per mN or per klbf) yet refuses pages that would make to_si overflow to
# inf (1e-300 counts per N) or flush every reading to ~0 (1e300); from 1 up, to_si stays finite.
COUNTS_PER_UNIT_RANGE = (1.0, 1e9)


class CalibrationError(NetFTError):
    """Calibration could not be read or makes no sense."""


def unit_key(unit: str) -> str:
    """Return a unit name without case, spaces or - . * · _ ("N-m" -> "nm"), the tables' keys."""
    return "".join(c for c in unit.strip().lower() if c not in " -.*·_")


@dataclass(frozen=True)
class Calibration:
    """Counts per force/torque unit and those units; ``to_si`` gives N and N·m."""

    counts_per_force: float
    counts_per_torque: float
    force_unit: str = "N"
    torque_unit: str = "Nm"
    _divisor: np.ndarray = field(init=False, repr=False, compare=False)
    _factor: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        low, high = COUNTS_PER_UNIT_RANGE
        for name in ("counts_per_force", "counts_per_torque"):
            value = getattr(self, name)
            try:
                ok = low <= float(value) <= high  # False for nan
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise CalibrationError(f"{name} must be between {low:g} and {high:g} counts per "
                                       f"unit (ATI boxes report ~1e3..1e7), got {value!r}")
        force = FORCE_UNITS_N.get(unit_key(self.force_unit))
        torque = TORQUE_UNITS_NM.get(unit_key(self.torque_unit))
        if force is None:
            raise CalibrationError(
                f"unknown force unit {self.force_unit!r}; known: N, mN, kN, lbf, klbf, kgf, gf")
        if torque is None:
            raise CalibrationError(
                f"unknown torque unit {self.torque_unit!r}; known: Nm, Nmm, Ncm, kNm, lbf-in, "
                "lbf-ft, kgf-cm, kgf-m")
        object.__setattr__(self, "_divisor", np.array([self.counts_per_force] * 3
                                                      + [self.counts_per_torque] * 3, np.float64))
        object.__setattr__(self, "_factor", np.array([force] * 3 + [torque] * 3, np.float64))

    def to_si(self, counts: Sequence[int] | np.ndarray) -> np.ndarray:
        """Convert counts (..., 6) to Fx Fy Fz in N and Tx Ty Tz in N·m (float64).

        Divides by counts-per-unit first, then scales the unit to SI, so for N/Nm the result is
        exactly ``counts / counts_per_unit``.
        """
        return np.asarray(counts, dtype=np.float64) / self._divisor * self._factor


def _text(root: ET.Element, tag: str) -> str | None:
    element = root.find(f".//{tag}")
    if element is None or element.text is None or not element.text.strip():
        return None
    return element.text.strip()


def _xml_unit(root: ET.Element, code_tag: str, text_tag: str, codes: dict[int, str],
              table: dict[str, float], what: str) -> str:
    """Return the unit from the text tag and/or the code tag; both present must agree."""
    text, code = _text(root, text_tag), _text(root, code_tag)
    from_code = None
    if code is not None:
        if code.isdigit():
            if int(code) not in codes:
                raise CalibrationError(f"unknown {what} unit code <{code_tag}>{code}; "
                                       f"{CALIBRATION_HINT}")
            from_code = codes[int(code)]
        else:
            from_code = code
    if text is None and from_code is None:
        raise CalibrationError(f"no {what} unit (<{text_tag}> or <{code_tag}>); {CALIBRATION_HINT}")
    if text is not None and from_code is not None:
        a, b = table.get(unit_key(text)), table.get(unit_key(from_code))
        if a is not None and b is not None and a != b:
            raise CalibrationError(f"{what} unit <{text_tag}>{text} disagrees with "
                                   f"<{code_tag}>{code} ({from_code}); {CALIBRATION_HINT}")
    return text if text is not None else from_code


def parse_calibration_xml(data: str | bytes) -> Calibration:
    """Parse the ``Calibration`` in a netftapi2.xml page (parsed as data, never eval).

    The box's page has no DTD, so any is refused (defusedxml) as soon as the parser meets it:
    entity-expansion bombs and external entities are never expanded, whatever expat's version.
    """
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except ET.ParseError as e:
        raise CalibrationError(
            f"calibration page is not valid XML ({e}); {CALIBRATION_HINT}") from e
    except DefusedXmlException as e:
        raise CalibrationError(f"calibration page has a DTD or entities, refused ({e!r}); "
                               f"{CALIBRATION_HINT}") from e
    values = {}
    for tag in ("cfgcpf", "cfgcpt"):
        text = _text(root, tag)
        if text is None:
            raise CalibrationError(f"calibration page has no <{tag}>; {CALIBRATION_HINT}")
        try:
            values[tag] = float(text)
        except ValueError:
            raise CalibrationError(
                f"<{tag}> is not a number: {text!r}; {CALIBRATION_HINT}") from None
    force_unit = _xml_unit(root, "cfgfu", "scfgfu", FORCE_UNIT_CODES, FORCE_UNITS_N, "force")
    torque_unit = _xml_unit(root, "cfgtu", "scfgtu", TORQUE_UNIT_CODES, TORQUE_UNITS_NM, "torque")
    try:
        return Calibration(values["cfgcpf"], values["cfgcpt"], force_unit, torque_unit)
    except CalibrationError as e:
        raise CalibrationError(f"{e}; {CALIBRATION_HINT}") from None


def fetch_calibration(host: str, port: int = 80, timeout: float = 1.0) -> Calibration:
    """GET http://host:port/netftapi2.xml and parse it; whole exchange bounded by ~``timeout``."""
    url = f"http://{host}:{port}{CALIBRATION_PATH}"
    deadline = time.monotonic() + timeout
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", CALIBRATION_PATH)
        response = conn.getresponse()
        if response.status != 200:
            raise CalibrationError(f"{url} answered HTTP {response.status} {response.reason}; "
                                   f"{CALIBRATION_HINT}")
        body = bytearray()
        while chunk := response.read1(65536):
            body += chunk
            if len(body) > MAX_XML_BYTES:
                raise CalibrationError(f"{url} is larger than {MAX_XML_BYTES} bytes; "
                                       f"{CALIBRATION_HINT}")
            if time.monotonic() > deadline:
                raise CalibrationError(f"{url} took longer than {timeout} s; {CALIBRATION_HINT}")
    except (OSError, http.client.HTTPException) as e:
        raise CalibrationError(f"cannot read {url}: {e or type(e).__name__}; "
                               f"{CALIBRATION_HINT}") from e
    finally:
        conn.close()
    return parse_calibration_xml(bytes(body))
