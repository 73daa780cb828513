"""medgan: class-conditional GANs for privacy-preserving sharing of medical images.

The version ranges are the ones that install together on CPU with Python 3.11.
A GPU or TPU user installs the matching jax build afterwards (see README).
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

VERSION = re.search(
    r'__version__ = "([^"]+)"', Path(__file__).parent.joinpath("medgan/__init__.py").read_text()
).group(1)

setup(
    name="medgan",
    version=VERSION,
    description="Class-conditional GANs for privacy-preserving sharing of medical images",
    long_description=Path(__file__).parent.joinpath("README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["medgan", "medgan.*"]),
    install_requires=[
        "jax>=0.10,<0.11",
        "jaxlib>=0.10,<0.11",
        "flax>=0.12,<0.13",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12,<0.13",
        "tensorflow-cpu>=2.21,<2.22",
        "tensorflow-datasets>=4.9,<5",
        "ml-collections>=1.1,<2",
        "clu>=0.0.12",
        "tensorboard>=2.21,<2.22",  # clu's metric writers import it
        "absl-py>=2",
        "numpy>=1.26",
        "pillow>=10",
        "h5py>=3.10,<4",  # Keras' published ImageNet weights for the judge (models/keras_weights)
        # DICOM, plus the decoders for the compressed transfer syntaxes clinical
        # archives deliver (JPEG lossless/baseline, JPEG 2000, RLE).
        "pydicom>=3,<4",
        "pylibjpeg>=2",
        "pylibjpeg-libjpeg>=2",
        "pylibjpeg-openjpeg>=2",
        "pylibjpeg-rle>=2",
        "matplotlib>=3.8",
        "scipy>=1.11",  # rank tests and distributions of the audits
        "scikit-learn>=1.4",  # k-means cells of the data-copying test, t-SNE
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.6", "hypothesis>=6", "selenium>=4.20"],
    },
    entry_points={"console_scripts": ["medgan=medgan.main:run"]},
)
