"""PatchCore (Roth et al., CVPR 2022): nearest-neighbour distances from pretrained patch features to a coreset of
the intact photos' patches. Its maps in NumPy (`maps`), its coreset (`coreset`) and its Keras feature model
(`model`)."""
