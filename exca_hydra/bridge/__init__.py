"""The Hydra bridge: the app entry point, composition, the launchers and the sweeper."""
