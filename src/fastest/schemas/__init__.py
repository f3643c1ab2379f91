"""Request and response models (pydantic), one module per route group."""
