"""DRAEM (Zavrtanik et al., ICCV 2021): anomalies are synthesised on intact photos, a reconstructive network learns
to paint them out and a discriminative U-Net to outline them. Its own synthesis, losses, networks and training."""
