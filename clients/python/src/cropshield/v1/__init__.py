"""cropshield.v1: the messages (cropshield_pb2) and the service stub (cropshield_pb2_grpc)."""
