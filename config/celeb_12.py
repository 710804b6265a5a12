# main sweep point: 12% of events are celebrities (parallel data)
celeb_frac = 0.12
out_dir = 'out/celeb_12'
