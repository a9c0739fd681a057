"""Networks: backbones by name (registry), their pretrained weights, and the classifier built on them."""
