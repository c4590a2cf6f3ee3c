"""The learning stages: patches, the three networks, losses, training and segmentation."""
