"""App start: the model as the config (read its schema, generate Hydra's config groups and
defaults, help and suggestions) and the app entry point ``exca_hydra.main``."""
