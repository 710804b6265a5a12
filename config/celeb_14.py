# main sweep point: 14% of events are celebrities (parallel data)
celeb_frac = 0.14
out_dir = 'out/celeb_14'
