"""Wireless access rates from a channel model: a client's rate to its base station follows its
distance (path loss), shadowing and fading, and a cell's spectrum is shared by the clients that
transmit in it at the same moment."""
