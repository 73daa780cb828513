"""Procedural phantoms: chest radiographs, head CTs and mammogram patches with findings drawn by rule.

No real cohort can be downloaded where medgan is developed and tested, so the
project ships phantoms (docs/ARCHITECTURE.md, section "Phantoms"): images
rendered from a seed whose findings are drawn by an explicit anatomical rule
(an enlarged heart, fluid at a lung base, a lens-shaped bright collection
inside the skull, a spiculated mass ...), in cohorts whose label
co-occurrence is long-tailed like CheXpert's and RSNA ICH's, and that can be
written in those cohorts' on-disk layouts so the real loaders run on them.

Images are [R, R] for a resolution R in 32 ... 1024: chest radiographs and
mammograms uint8, bright = dense (MONOCHROME2); head CT int16 Hounsfield
units, clipped to HU_RANGE = [-1024, 3071]. Every random quantity comes from
its own generator named by a path (seeds.py), so for a fixed (seed,
acquisition) toggling one label changes only the pixels its rule draws
(`finding_region`), two acquisitions of one seed are the same patient imaged
twice (follow-up films, neighbouring CT slices, patches of one breast), and
images are bit-identical for a seed with a given NumPy version.

The public API is what this package exports; its modules are:
  seeds      hashing of name paths into generators; render_seeds
  geometry   smooth shape primitives, texture noise, the pose and the scene
  chest      the PA chest radiograph and one rule per CheXpert finding
  head_ct    the axial head CT slice and one rule per haemorrhage subtype
  mammo      the mammogram patch, masses and calcifications
  rendering  render_chest, render_head_ct_hu, render_mammo, finding_region; conspicuity
  cohorts    sample_cohort and PhantomSource (a cohort as a medgan Source)
  layouts    writers of the CheXpert and RSNA ICH on-disk layouts
"""

from medgan.data.phantoms.cohorts import RENDERER_VERSION, PhantomSource, sample_cohort
from medgan.data.phantoms.head_ct import HU_RANGE
from medgan.data.phantoms.layouts import PathLike, chexpert_patient_id, write_chexpert_layout, write_rsna_layout
from medgan.data.phantoms.rendering import (
    DEFAULT_CONSPICUITY,
    MAX_RESOLUTION,
    MIN_RESOLUTION,
    MODALITIES,
    finding_region,
    render_chest,
    render_head_ct_hu,
    render_mammo,
)
from medgan.data.phantoms.seeds import render_seeds

__all__ = [
    "DEFAULT_CONSPICUITY",
    "HU_RANGE",
    "MAX_RESOLUTION",
    "MIN_RESOLUTION",
    "MODALITIES",
    "RENDERER_VERSION",
    "PathLike",
    "PhantomSource",
    "chexpert_patient_id",
    "finding_region",
    "render_chest",
    "render_head_ct_hu",
    "render_mammo",
    "render_seeds",
    "sample_cohort",
    "write_chexpert_layout",
    "write_rsna_layout",
]
