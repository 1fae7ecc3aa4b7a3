"""The UniNote encoder: backbones, Matryoshka heads, checkpoints, encoder clients."""
