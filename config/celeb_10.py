# main sweep point: 10% of events are celebrities (parallel data)
celeb_frac = 0.10
out_dir = 'out/celeb_10'
