"""The marker's name, alone so that loading the plugin imports nothing else of schedlab."""

MARKER = "schedlab"
