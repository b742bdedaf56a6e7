"""What does exist: repository directories and indexes (read as little as
possible), the job service's jobs and the daemon's memory -> one frozen
ObservedState per pass. Writes nothing but the scanner's own cache in the state
directory (`scancache`). May import `jobs` (the service protocol), `memory`,
`formats`, `fs` and `model`.
"""
