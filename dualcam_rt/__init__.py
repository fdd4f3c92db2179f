"""dualcam-rt: acquisition and real-time inference for DualCam acoustic-optical cameras."""

__version__ = "0.1.0"
