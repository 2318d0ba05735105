"""Model-input transforms: decoded media (PIL images, samples, frames, strings) to tensors.

Each module here is a set of pure functions with shape checks. They reproduce
the reference ImageBind input transforms numerically (see the conformance
fixture's README, "Preprocessing facts"); the loaders in ``bindsearch.loaders``
do the decoding and the error reporting.
"""
