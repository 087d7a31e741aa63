"""What a room leaves behind for people who were not in it: the one-page policy summary a
participant reads before consenting, and the auditor's time-bound disclosure pack."""
