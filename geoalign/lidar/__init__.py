"""LiDAR in the cube: aerial point clouds (LAS/LAZ/COPC) and spaceborne footprints (GEDI)."""
