"""The shipped feature-classifier weights and their manifest (data files, read by
:mod:`hierot.evaluation.features`)."""

__all__: list[str] = []  # a package of data files: nothing to import
