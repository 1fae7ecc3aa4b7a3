"""UniNote training: stage 1 contrastive SFT and stage 2 GRPO."""
