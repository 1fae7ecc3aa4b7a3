"""Stage-1 losses, one class per file: InfoNCE, the JS soft-target loss, and the Matryoshka wrapper."""

from training.losses.infonce_loss import InfoNCELoss
from training.losses.js_soft_target_loss import JSSoftTargetLoss
from training.losses.matryoshka_loss import MatryoshkaLoss, shrink

__all__ = ["InfoNCELoss", "JSSoftTargetLoss", "MatryoshkaLoss", "shrink"]
