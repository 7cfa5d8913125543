"""The cache: the uid of a config, one folder per uid on disk, configs frozen once they have a uid."""
