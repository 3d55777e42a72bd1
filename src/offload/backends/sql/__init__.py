"""What both SQL backends share: the connector base, named queries, row decoding and one
module per storage area running that area's named queries."""
