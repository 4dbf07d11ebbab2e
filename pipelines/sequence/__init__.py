"""The learned order-aware next-item model (SASRec class), trained with PyTorch on CPU in the build."""
