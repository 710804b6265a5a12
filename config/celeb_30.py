# main sweep point: 30% of events are celebrities (parallel data)
celeb_frac = 0.30
out_dir = 'out/celeb_30'
