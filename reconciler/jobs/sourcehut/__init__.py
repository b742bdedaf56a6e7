"""The builds.sr.ht job service: the GraphQL client (requests + tenacity, the only
module that imports requests), build manifests, and the service with its own
directory of known jobs and downloads.
"""
