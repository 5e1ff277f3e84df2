"""geoalign.datasets: torchgeo datasets and samplers over aligned cubes (imports torch)."""
