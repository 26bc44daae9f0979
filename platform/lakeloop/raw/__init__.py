"""Raw snapshots: the files a source system drops, copied immutably and hashed."""
