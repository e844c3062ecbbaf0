"""Stochastic Image Quality Transfer (IQT) for low-field brain MRI, in JAX/Flax."""
