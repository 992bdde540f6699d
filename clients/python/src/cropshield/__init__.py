"""CropShield Serve client: crop leaf disease classification with Grad-CAM explanations.

    import cropshield
    client = cropshield.Client("localhost:50051")
    top = client.predict("leaf.jpg").predictions[0]
    print(top.label, top.probability)

Client (blocking) and AsyncClient (asyncio) call cropshield.v1.CropShieldService; the messages are
in cropshield.v1.cropshield_pb2 (also exported here as `pb`), the stub in
cropshield.v1.cropshield_pb2_grpc.
"""

from ._requests import Explanation
from .aio import AsyncClient
from .client import Client
from .v1 import cropshield_pb2 as pb

__version__ = "0.1.0"
__all__ = ["AsyncClient", "Client", "Explanation", "pb", "__version__"]
