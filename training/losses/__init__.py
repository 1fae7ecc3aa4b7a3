"""Training losses, one class per file: InfoNCE, the JS soft-target loss, the Matryoshka wrapper (stage 1), and the
copy-tower losses (SSCD): multi-positive InfoNCE and the KoLeo regulariser."""

from training.losses.infonce_loss import InfoNCELoss
from training.losses.js_soft_target_loss import JSSoftTargetLoss
from training.losses.koleo_loss import KoLeoLoss
from training.losses.matryoshka_loss import MatryoshkaLoss, shrink
from training.losses.multi_positive_infonce_loss import MultiPositiveInfoNCELoss

__all__ = ["InfoNCELoss", "JSSoftTargetLoss", "KoLeoLoss", "MatryoshkaLoss", "MultiPositiveInfoNCELoss", "shrink"]
