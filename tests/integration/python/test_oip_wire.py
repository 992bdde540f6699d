"""The Open Inference Protocol (KServe v2) endpoint of the real server, checked by an independent
oracle of the wire format: the test does not use the server's generated messages. It encodes
ModelInferRequest by hand from the published field numbers (a tiny protobuf wire encoder below),
calls /inference.GRPCInferenceService/ModelInfer as a generic unary call with identity
serializers, decodes the response by hand, and compares it with cropshield.v1 Predict (whose
stubs are only used for the reference answer)."""

import os
import struct
import unittest

import grpc
import numpy as np

import cropshield_testing as cst
from cropshield_testing import Server, probabilities

SAMPLES = os.path.join(cst.SOURCE_DIR, "models", "samples")
PHOTOS = ["potato_late_blight_800x600.jpg", "sugarcane_rust_640x480.jpg",
          "tomato_yellow_leaf_curl_virus_480x640.jpg"]
MODEL = "cropshield-demo"
CLASSES = 22
SERVICE = "/inference.GRPCInferenceService/"

# Published field numbers (grpc_predict_v2.proto).
REQ_MODEL_NAME, REQ_ID, REQ_PARAMETERS, REQ_INPUTS, REQ_RAW_INPUT = 1, 3, 4, 5, 7
TENSOR_NAME, TENSOR_DATATYPE, TENSOR_SHAPE, TENSOR_CONTENTS = 1, 2, 3, 5
CONTENTS_BYTES = 8
PARAM_INT64 = 2
RESP_MODEL_NAME, RESP_MODEL_VERSION, RESP_ID, RESP_OUTPUTS, RESP_RAW_OUTPUT = 1, 2, 3, 5, 6


# --- a minimal protobuf wire encoder / decoder -------------------------------------------------
def varint(value):
    value &= (1 << 64) - 1  # negative int64 values are ten-byte two's complement varints
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number, value):
    return varint(number << 3 | 0) + varint(value)


def field_bytes(number, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def packed_varints(number, values):
    return field_bytes(number, b"".join(varint(v) for v in values))


def read_varint(data, at):
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def decode(data):
    """{field number: [values]}: ints for varints, bytes for length-delimited fields."""
    fields, at = {}, 0
    while at < len(data):
        key, at = read_varint(data, at)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, at = read_varint(data, at)
        elif wire_type == 2:
            length, at = read_varint(data, at)
            value, at = data[at:at + length], at + length
        elif wire_type == 5:
            value, at = data[at:at + 4], at + 4
        elif wire_type == 1:
            value, at = data[at:at + 8], at + 8
        else:
            raise ValueError(f"wire type {wire_type}")
        fields.setdefault(number, []).append(value)
    return fields


def repeated_int64(values):
    """A repeated int64 field, packed (one bytes value) or not (several ints)."""
    out = []
    for value in values:
        if isinstance(value, int):
            out.append(value)
            continue
        at = 0
        while at < len(value):
            v, at = read_varint(value, at)
            out.append(v)
    return [v - (1 << 64) if v >= 1 << 63 else v for v in out]


def raw_bytes_elements(elements):
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def split_bytes_elements(raw):
    out, at = [], 0
    while at < len(raw):
        (length,) = struct.unpack_from("<I", raw, at)
        out.append(raw[at + 4:at + 4 + length])
        at += 4 + length
    return out


def infer_request(photos, raw, top_k=None, datatype="BYTES"):
    tensor = (field_bytes(TENSOR_NAME, "image") + field_bytes(TENSOR_DATATYPE, datatype) +
              packed_varints(TENSOR_SHAPE, [len(photos), 1] if raw else [len(photos)]))
    if not raw:
        tensor += field_bytes(TENSOR_CONTENTS,
                              b"".join(field_bytes(CONTENTS_BYTES, p) for p in photos))
    request = field_bytes(REQ_MODEL_NAME, MODEL) + field_bytes(REQ_ID, "wire-1")
    if top_k is not None:
        entry = field_bytes(1, "top_k") + field_bytes(2, field_varint(PARAM_INT64, top_k))
        request += field_bytes(REQ_PARAMETERS, entry)
    request += field_bytes(REQ_INPUTS, tensor)
    if raw:
        request += field_bytes(REQ_RAW_INPUT, raw_bytes_elements(photos))
    return request


# --- the test ------------------------------------------------------------------------------------
class OipWireTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--model=" + cst.DEMO_REPOSITORY, "--metrics_address=",
                            "--device=cpu", "--warmup_iterations=1")
        cls.photos = []
        for name in PHOTOS:
            with open(os.path.join(SAMPLES, name), "rb") as f:
                cls.photos.append(f.read())

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def call(self, method, request_bytes):
        rpc = self.server.channel.unary_unary(SERVICE + method, request_serializer=None,
                                              response_deserializer=None)
        return rpc(request_bytes, timeout=120)

    def test_server_live_and_ready(self):
        self.assertEqual(decode(self.call("ServerLive", b"")), {1: [1]})
        self.assertEqual(decode(self.call("ServerReady", b"")), {1: [1]})
        self.assertEqual(decode(self.call("ModelReady", field_bytes(1, MODEL))), {1: [1]})

    def check_infer(self, raw):
        response = decode(self.call("ModelInfer", infer_request(self.photos, raw, top_k=2)))
        self.assertEqual(response[RESP_MODEL_NAME], [MODEL.encode()])
        self.assertEqual(response[RESP_MODEL_VERSION], [b"1"])
        self.assertEqual(response[RESP_ID], [b"wire-1"])
        outputs = [decode(o) for o in response[RESP_OUTPUTS]]
        self.assertEqual([o[TENSOR_NAME][0] for o in outputs], [b"probabilities", b"labels"])
        self.assertEqual([o[TENSOR_DATATYPE][0] for o in outputs], [b"FP32", b"BYTES"])
        self.assertEqual(repeated_int64(outputs[0][TENSOR_SHAPE]), [3, CLASSES])
        self.assertEqual(repeated_int64(outputs[1][TENSOR_SHAPE]), [3, 2])
        raw_probabilities, raw_labels = response[RESP_RAW_OUTPUT]
        self.assertEqual(len(raw_probabilities), 3 * CLASSES * 4)
        served = np.frombuffer(raw_probabilities, dtype="<f4").reshape(3, CLASSES)
        labels = split_bytes_elements(raw_labels)
        self.assertEqual(len(labels), 6)
        for i, photo in enumerate(self.photos):
            predict = self.server.predict(photo, top_k=CLASSES)
            expected = probabilities(predict, CLASSES)
            diff = float(np.abs(served[i] - expected).max())
            self.assertLessEqual(diff, 1e-6, PHOTOS[i])
            self.assertEqual(labels[2 * i].decode(), predict.predictions[0].label, PHOTOS[i])
            self.assertEqual(labels[2 * i + 1].decode(), predict.predictions[1].label, PHOTOS[i])
            self.assertEqual(int(np.argmax(served[i])), predict.predictions[0].class_index)

    def test_infer_with_bytes_contents_matches_predict(self):
        self.check_infer(raw=False)

    def test_infer_with_raw_input_contents_matches_predict(self):
        self.check_infer(raw=True)

    def test_wrong_datatype_is_invalid_argument(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.call("ModelInfer", infer_request(self.photos, False, datatype="FP32"))
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("BYTES", caught.exception.details())


if __name__ == "__main__":
    unittest.main()
