"""medgan: class-conditional GANs for privacy-preserving sharing of medical images."""

__version__ = "0.1.0"
