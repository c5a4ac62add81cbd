"""Training: the loop, the order of batches, the run directory, and where the processes run.

================ ==================================================================================
``trainer``      the loop: step, finite check, metrics, checkpoints, resume
``batches``      resumable batch order over a data set held whole on the device
``rundir``       the run directory's layout and atomic writes
``runtime``      one process's device, rank and world size; sharding and the divergence's gather
``distributed``  the data-parallel runtime under ``torchrun`` (process group, DDP, synchronised
                 BatchNorm, the differentiable gather)
================ ==================================================================================

Import the modules themselves (``from hierot.training.trainer import Trainer``); this package
imports nothing, so the run directory can be read without loading the trainer.
"""
