"""Per-utterance features: openSMILE functionals and L3 embeddings (x_a), text encoders (x_t),
and the on-disk feature store the offline pipeline writes and training reads."""
