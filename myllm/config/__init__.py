"""Settings: the model and training configs, config files, presets."""
