# main sweep point: 20% of events are celebrities (parallel data)
celeb_frac = 0.20
out_dir = 'out/celeb_20'
