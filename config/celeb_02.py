# main sweep point: 2% of events are celebrities (parallel data)
celeb_frac = 0.02
out_dir = 'out/celeb_02'
