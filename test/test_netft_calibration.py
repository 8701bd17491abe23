"""Net F/T calibration: units, plausibility bounds, hostile pages, and the page served over HTTP
by the loopback calibration server (127.0.0.1 only).
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from tacforce_ros.hardware.netft_calibration import (
    LBF_N,
    Calibration,
    CalibrationError,
    fetch_calibration,
    parse_calibration_xml,
)
from tacforce_ros.sim.netft_box import CalibrationServer, calibration_xml
from test_netft import closed_port


def test_to_si_is_counts_over_counts_per_unit_exactly():
    cal = Calibration(1_000_000, 2_000_000)
    counts = [1_500_000, -3, 7, 100_000, -200_000, 1]
    wrench = cal.to_si(counts)
    assert wrench.shape == (6,) and wrench.dtype == np.float64
    assert np.array_equal(wrench, np.array(counts, float) / np.array([1e6] * 3 + [2e6] * 3))
    assert cal.to_si(np.array([counts, counts])).shape == (2, 6)


@pytest.mark.parametrize(("force_unit", "torque_unit", "newton", "newton_metre"), [
    ("N", "Nm", 1.0, 1.0),
    ("N", "N-m", 1.0, 1.0),
    ("N", "Nmm", 1.0, 1e-3),
    ("N", "N·mm", 1.0, 1e-3),
    ("lbf", "lbf-in", LBF_N, LBF_N * 0.0254),
    ("lbf", "lbf-ft", LBF_N, LBF_N * 0.3048),
    ("kN", "kNm", 1e3, 1e3),
    ("kgf", "kgf-cm", 9.80665, 0.0980665),
    ("gf", "Ncm", 0.00980665, 0.01),
])
def test_units_convert_to_si(force_unit, torque_unit, newton, newton_metre):
    cal = Calibration(1000, 500, force_unit, torque_unit)
    wrench = cal.to_si([1000, 2000, -3000, 500, 1000, -1500])
    np.testing.assert_allclose(wrench, [newton, 2 * newton, -3 * newton,
                                        newton_metre, 2 * newton_metre, -3 * newton_metre],
                               rtol=1e-12)


def test_one_lbf_in_is_0_112985_nm():
    assert Calibration(1, 1, "lbf", "lbf-in").to_si([0, 0, 0, 1, 0, 0])[3] == pytest.approx(
        0.1129848290276167, rel=1e-12)


@pytest.mark.parametrize("kwargs", [
    {"counts_per_force": 0, "counts_per_torque": 1},
    {"counts_per_force": 1, "counts_per_torque": -5},
    {"counts_per_force": float("nan"), "counts_per_torque": 1},
    {"counts_per_force": 1, "counts_per_torque": 1, "force_unit": "furlong"},
    {"counts_per_force": 1, "counts_per_torque": 1, "torque_unit": "N"},
])
def test_bad_calibration_is_calibration_error(kwargs):
    with pytest.raises(CalibrationError):
        Calibration(**kwargs)


def test_parse_xml_with_unit_codes_only():
    xml = ("<netft><cfgcpf>1000000</cfgcpf><cfgcpt>1000</cfgcpt>"
           "<cfgfu>1</cfgfu><cfgtu>1</cfgtu></netft>")
    assert parse_calibration_xml(xml) == Calibration(1e6, 1e3, "lbf", "lbf-in")


def test_parse_xml_with_text_units_and_extra_fields():
    xml = ("<?xml version='1.0'?><netft><prodname>Net F/T</prodname><cfgcalsel>0</cfgcalsel>"
           "<cfgcpf>1000000.0</cfgcpf><cfgcpt>1000</cfgcpt><scfgfu>N</scfgfu>"
           "<scfgtu>N-mm</scfgtu></netft>")
    cal = parse_calibration_xml(xml.encode())
    assert cal == Calibration(1e6, 1e3, "N", "N-mm")
    np.testing.assert_allclose(cal.to_si([1e6, 0, 0, 1e3, 0, 0]), [1, 0, 0, 1e-3, 0, 0])


def test_calibration_xml_round_trips():
    for units in [("N", "Nm"), ("lbf", "lbf-in"), ("N", "Nmm"), ("mN", "mNm")]:
        assert parse_calibration_xml(calibration_xml(13107.2, 2048, *units)) == Calibration(
            13107.2, 2048, *units)


@pytest.mark.parametrize(("xml", "match"), [
    ("<netft><cfgcpf>1</cfgcpf>", "not valid XML"),
    ("not xml at all", "not valid XML"),
    ("<netft><cfgcpt>1</cfgcpt><cfgfu>2</cfgfu><cfgtu>3</cfgtu></netft>", "cfgcpf"),
    ("<netft><cfgcpf>1</cfgcpf><cfgfu>2</cfgfu><cfgtu>3</cfgtu></netft>", "cfgcpt"),
    ("<netft><cfgcpf>abc</cfgcpf><cfgcpt>1</cfgcpt><cfgfu>2</cfgfu><cfgtu>3</cfgtu></netft>",
     "not a number"),
    ("<netft><cfgcpf>0</cfgcpf><cfgcpt>1</cfgcpt><cfgfu>2</cfgfu><cfgtu>3</cfgtu></netft>",
     "between 1 and 1e\\+09"),
    ("<netft><cfgcpf>1</cfgcpf><cfgcpt>1</cfgcpt><cfgfu>9</cfgfu><cfgtu>3</cfgtu></netft>",
     "unit code"),
    ("<netft><cfgcpf>1</cfgcpf><cfgcpt>1</cfgcpt></netft>", "no force unit"),
    ("<netft><cfgcpf>1</cfgcpf><cfgcpt>1</cfgcpt><cfgfu>2</cfgfu><scfgfu>lbf</scfgfu>"
     "<cfgtu>3</cfgtu></netft>", "disagrees"),
])
def test_malformed_xml_is_calibration_error_naming_parameters(xml, match):
    with pytest.raises(CalibrationError, match=match) as info:
        parse_calibration_xml(xml)
    assert "counts_per_force" in str(info.value) and "counts_per_torque" in str(info.value)


@pytest.mark.parametrize("counts", [1e-300, 0.5, 2e9, 1e300, float("inf")])
def test_implausible_counts_per_unit_are_refused_naming_the_value(counts):
    with pytest.raises(CalibrationError) as info:
        parse_calibration_xml(calibration_xml(counts, 1_000_000))
    message = str(info.value)
    assert f"got {counts!r}" in message and "\n" not in message
    with pytest.raises(CalibrationError, match="counts_per_torque"):
        Calibration(1_000_000, counts)


def test_counts_per_unit_bounds_are_inclusive_and_keep_to_si_finite():
    for counts in (1, 1e9):
        cal = Calibration(counts, counts, "klbf", "kNm")
        assert np.isfinite(cal.to_si([2**31 - 1, -(2**31)] * 3)).all()


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE netft [<!ENTITY a "aaaaaaaaaa">'
                  + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
                            for p, c in zip("abcdefgh", "bcdefghi"))
                  + "]><netft><cfgcpf>&i;</cfgcpf></netft>")
QUADRATIC = (f'<!DOCTYPE netft [<!ENTITY a "{"a" * 50_000}">]><netft><cfgcpf>'
             + "&a;" * 10_000 + "</cfgcpf></netft>")
EXTERNAL = ('<!DOCTYPE netft [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
            "<netft><cfgcpf>&x;</cfgcpf></netft>")
HARMLESS_DTD = ('<!DOCTYPE netft [<!ENTITY cpf "1000000">]><netft><cfgcpf>&cpf;</cfgcpf>'
                "<cfgcpt>&cpf;</cfgcpt><cfgfu>2</cfgfu><cfgtu>3</cfgtu></netft>")


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, QUADRATIC, EXTERNAL, HARMLESS_DTD],
                         ids=["billion_laughs", "quadratic", "external", "harmless"])
def test_a_dtd_is_refused_whatever_expat_would_do(xml):
    """The box's page has no DTD; refusing any means no entity is ever expanded."""
    with pytest.raises(CalibrationError, match="DTD") as info:
        parse_calibration_xml(xml)
    assert "counts_per_force" in str(info.value)


def test_fetch_calibration_from_server():
    with CalibrationServer(1_000_000, 1_000_000) as server:
        assert fetch_calibration(*server.address) == Calibration(1e6, 1e6, "N", "Nm")
    with CalibrationServer(13107.2, 2048, "lbf", "lbf-in") as server:
        cal = fetch_calibration(*server.address)
    assert cal == Calibration(13107.2, 2048, "lbf", "lbf-in")


def test_fetch_calibration_malformed_page():
    with CalibrationServer(body=b"<netft><cfgcpf>1</cfg") as server:
        with pytest.raises(CalibrationError, match="not valid XML"):
            fetch_calibration(*server.address)


def test_fetch_calibration_unreachable_names_parameters_quickly():
    port = closed_port(socket.SOCK_STREAM)
    t0 = time.monotonic()
    with pytest.raises(CalibrationError) as info:
        fetch_calibration("127.0.0.1", port, timeout=0.5)
    assert time.monotonic() - t0 < 1.0
    message = str(info.value)
    assert f"127.0.0.1:{port}/netftapi2.xml" in message
    assert "counts_per_force" in message and "counts_per_torque" in message


def test_fetch_calibration_silent_server_times_out():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection in the kernel, never answers
        t0 = time.monotonic()
        with pytest.raises(CalibrationError, match="counts_per_force"):
            fetch_calibration(*listener.getsockname(), timeout=0.3)
        assert time.monotonic() - t0 < 1.5
