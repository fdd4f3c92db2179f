"""Signal processing on sensor blocks: beamforming, MFCC volumes, overlay and localisation.

``beamform`` turns a (128, 1024) block into a (36, 48, 512) power map on NumPy or CuPy;
``mfcc`` compresses each pixel's 512 bins to 12 coefficients; ``overlay`` draws and locates.
"""

from .beamform import Beamformer, array_module, steering_matrices
from .mfcc import mfcc_volume
from .overlay import band_energy, localise, overlay

__all__ = ["Beamformer", "array_module", "steering_matrices", "mfcc_volume", "band_energy", "localise", "overlay"]
