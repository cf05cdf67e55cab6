"""Raw review files -> `datasets`: reading, schema mapping, counted filters, cleaning, splits, topic labels."""
