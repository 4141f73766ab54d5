"""The synthetic multi-camera video bench: a site, walking identities, MOTChallenge output."""
