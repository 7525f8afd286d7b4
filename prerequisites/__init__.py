"""What a stack expects of its cluster, and the check that finds what is missing before anything is created."""
