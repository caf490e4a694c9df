"""A model file whose import fails."""

raise ImportError("No module named 'company_internal_layers'")
