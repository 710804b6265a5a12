# main sweep point: 24% of events are celebrities (parallel data)
celeb_frac = 0.24
out_dir = 'out/celeb_24'
