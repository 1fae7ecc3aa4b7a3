"""UniNote training: stage 1 contrastive SFT and stage 2 GRPO."""

import encoder  # noqa: E402,F401  (OMP_WAIT_POLICY before torch loads: encoder/__init__.py)
