# main sweep point: 4% of events are celebrities (parallel data)
celeb_frac = 0.04
out_dir = 'out/celeb_04'
