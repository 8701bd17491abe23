"""RDT wire format: requests and records byte for byte as the ATI manual gives them."""

from __future__ import annotations

import pytest

from tacforce_ros.hardware.rdt import (
    CMD_SET_BIAS,
    CMD_START_REALTIME,
    CMD_STOP,
    RECORD_SIZE,
    RdtError,
    RdtRecord,
    decode_record,
    decode_request,
    encode_record,
    encode_request,
)


def test_request_encoding_matches_manual_and_round_trips():
    assert encode_request(CMD_START_REALTIME) == bytes.fromhex("1234 0002 00000000")
    assert encode_request(CMD_STOP) == bytes.fromhex("1234 0000 00000000")
    assert encode_request(CMD_SET_BIAS) == bytes.fromhex("1234 0042 00000000")
    assert decode_request(encode_request(CMD_START_REALTIME, 2**32 - 1)) == (2, 2**32 - 1)


@pytest.mark.parametrize(("command", "count"), [(-1, 0), (0x10000, 0), (2, -1), (2, 2**32)])
def test_request_out_of_range_is_value_error(command, count):
    with pytest.raises(ValueError):
        encode_request(command, count)


@pytest.mark.parametrize("data", [b"", bytes(7), bytes(9), bytes.fromhex("4321 0002 00000000")])
def test_bad_request_is_rdt_error(data):
    with pytest.raises(RdtError):
        decode_request(data)


def test_record_round_trip_and_byte_order():
    record = RdtRecord(2**32 - 1, 7, 0x80000000, (-1, 2**31 - 1, -(2**31), 0, 123456, -654321))
    data = encode_record(record)
    assert len(data) == RECORD_SIZE == 36
    assert decode_record(data) == record
    assert decode_record(bytearray(data)) == record
    raw = bytes.fromhex("00000001 00000002 00000003" + "ffffffff" + "00000100" * 5)
    assert decode_record(raw) == RdtRecord(1, 2, 3, (-1, 256, 256, 256, 256, 256))


@pytest.mark.parametrize("size", [0, 8, 35, 37, 72])
def test_record_wrong_size_is_rdt_error(size):
    with pytest.raises(RdtError, match="36 bytes"):
        decode_record(bytes(size))
    assert issubclass(RdtError, ValueError)
