"""tomk: Theory-of-Mind and Kindness alignment in JAX/Flax."""
