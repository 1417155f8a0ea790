"""`tierstream demo`: a small sales organisation (`people`, also the directory `make up`
writes) and a realistic stream of events posted to ingest (`traffic`)."""
