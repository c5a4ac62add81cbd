"""Training: the loop, the order of batches, the run directory, and where the processes run.

================ ==================================================================================
``session``      :func:`~hierot.training.session.fit`: validate, open the run, build, train
``parts``        what the trainer uses, built for one runtime (precision, compile, wrapping,
                 optimiser, schedule, EMA, held-out evaluation, callbacks)
``trainer``      the loop only: step, finite check, metrics, checkpoints
``batches``      resumable batch order over a data set held whole on the device
``runtime``      one process's device, rank and world size; sharding and the divergence's gather
``distributed``  the data-parallel runtime under ``torchrun`` (process group, DDP, synchronised
                 BatchNorm, the differentiable gather)
================ ==================================================================================

Import the modules themselves (``from hierot.training.trainer import Trainer``); this package
imports nothing. The run directory is :mod:`hierot.run`'s, a layer below.
"""
