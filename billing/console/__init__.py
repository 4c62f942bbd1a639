"""The user console (/console/): server-rendered pages over billing's services, for one's own keys, usage,
top-up and redemption codes."""
